# A stand-in for a real model: reads its input (model.in) on standard
# input and prints a loss.
awk '$1 == "rate" { rate = $3 } $1 == "size" { size = $3 }
     END { printf "rate %s size %s loss %.4f\n", rate, size, 1 / (1 + 100 * rate * size) }'
