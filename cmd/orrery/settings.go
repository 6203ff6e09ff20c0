package main

import (
	"encoding/json"

	"orrery/store"
)

// runSettings is what an experiment records of the command line that
// started it (store.Experiment.Settings), so that a resume can say when
// it differs.
type runSettings struct {
	Policy string `json:"policy,omitempty"`
}

// settingsJSON returns the settings of a new experiment started with
// policy.
func settingsJSON(policy string) string {
	b, _ := json.Marshal(runSettings{Policy: policy})
	return string(b)
}

// startedPolicy returns the policy an experiment was started with, or ""
// when it did not record one (an older build).
func startedPolicy(exp *store.Experiment) string {
	var s runSettings
	if json.Unmarshal([]byte(exp.Settings), &s) != nil {
		return ""
	}
	return s.Policy
}
