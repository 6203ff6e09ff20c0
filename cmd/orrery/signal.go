package main

import "syscall"

// signalNumber returns the number of a signal named as Go prints it
// ("killed", "terminated"), or 0.
func signalNumber(name string) int {
	for s := syscall.Signal(1); s < 65; s++ {
		if s.String() == name {
			return int(s)
		}
	}
	return 0
}
