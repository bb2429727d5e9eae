package sandbox

import (
	"strconv"
	"testing"
)

func TestJournalKeepsTheLast10000(t *testing.T) {
	st := newState(config{})
	for i := range 2*maxJournal + 5 {
		st.record(Call{Op: strconv.Itoa(i)})
	}
	calls := st.calls("", "")
	if len(calls) != maxJournal || calls[len(calls)-1].Op != strconv.Itoa(2*maxJournal+4) ||
		calls[0].Op != strconv.Itoa(maxJournal+5) {
		t.Errorf("journal holds %d calls from %s to %s", len(calls), calls[0].Op, calls[len(calls)-1].Op)
	}
}
