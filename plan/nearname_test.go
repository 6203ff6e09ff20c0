package plan_test

import (
	"strings"
	"testing"

	"orrery/plan"
)

// TestMisspeltNameWarns: in classic shell text an unknown $name is left
// for the shell, but when a parameter has a near name it is most likely a
// typo, and every job would fail: the plan is valid, with a warning that
// names the parameter.
func TestMisspeltNameWarns(t *testing.T) {
	const head = "parameter alpha float range from 1 to 2;\nparameter Beta integer range from 1 to 2;\nparameter n integer range from 1 to 2;\n"
	tests := []struct {
		name, command string
		want          []string // warnings after the head's (none)
	}{
		{"typo", `node:execute ./model $alpah > out`,
			[]string{"test.pln:5:23: $alpah is not a parameter; did you mean $alpha?"}},
		{"braces", `node:execute echo ${alhpa}`,
			[]string{"test.pln:5:20: ${alhpa} is not a parameter; did you mean ${alpha}?"}},
		{"case only", `node:execute echo $beta $BETA`,
			[]string{"test.pln:5:20: $beta is not a parameter; did you mean $Beta?",
				"test.pln:5:26: $BETA is not a parameter; did you mean $Beta?"}},
		{"implicit name", `node:execute echo $jobidnex`,
			[]string{"test.pln:5:20: $jobidnex is not a parameter; did you mean $jobindex?"}},
		{"two in one line", `node:execute echo $alph; echo $Betta`,
			[]string{"test.pln:5:20: $alph is not a parameter; did you mean $alpha?",
				"test.pln:5:32: $Betta is not a parameter; did you mean $Beta?"}},
		// Shell variables and the job's own environment are left alone.
		{"shell variables", `node:execute echo $HOME $PATH ${USER} $i $m $nn`, nil},
		{"job environment", `node:execute echo $ORRERY_JOBINDEX $ORRERY_JOBNAME`, nil},
		{"known names", `node:execute echo $alpha ${Beta} $n $jobindex $jobname`, nil},
		// A long completion of a prefix is not a near name.
		{"prefix only", `node:execute echo $alphabetical`, nil},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			src := head + "task main\n\t" + test.command + "\nendtask\n"
			p := parseOK(t, src)
			var got []string
			for _, w := range p.Warnings {
				got = append(got, w.String())
			}
			if strings.Join(got, "\n") != strings.Join(test.want, "\n") {
				t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(test.want, "\n"))
			}
			// The reference is still left for the shell.
			if text := p.Task("main").Commands[0].Args[0].String(); strings.Contains(test.command, "$HOME") && !strings.Contains(text, "$HOME") {
				t.Errorf("shell text %q lost $HOME", text)
			}
		})
	}
}

// TestMisspeltNameModernIsAnError: in the modern dialect an unknown name
// in shell text was already an error, with the suggestion; it stays one.
func TestMisspeltNameModernIsAnError(t *testing.T) {
	_, err := plan.Parse("test.pln", []byte("parameter alpha float range from 1 to 2\ntask main\n\tshexec \"echo $alpah\"\nendtask\n"), plan.Options{})
	if err == nil || !strings.Contains(err.Error(), "test.pln:3:15: unknown name $alpah in substitution (did you mean alpha?)") {
		t.Errorf("err = %v, want the unknown name $alpah at 3:15 with a suggestion", err)
	}
}
