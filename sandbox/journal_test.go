package sandbox

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
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

// TestJournalMasksSecrets: GET /control/calls shows no credential or
// signature of any API, wherever the client put it: CrystalPAY v1's secret
// and withdraw signature in the query, Pegas-kassa's token in the query or
// the body (JSON or a form), CrystalPAY v3's auth_secret in the body. The
// rest stays.
func TestJournalMasksSecrets(t *testing.T) {
	s := newTestSandbox(t, nil)
	signature := "0123456789abcdef0123456789abcdef"
	s.get(crystalPayURL("o", "balance"))
	s.get("/crystalpay/api.php?s=" + DefaultCrystalPaySecret + "&n=sandbox&o=withdraw&amount=1&wallet=w&service=QIWI&secret=" + signature)
	s.get("/pegas/api/v1/balance?token=" + DefaultPegasToken)
	s.postJSON("/pegas/api/v1/balance", `{"token":"`+DefaultPegasToken+`"}`)
	s.do(http.MethodPost, "/pegas/api/v1/balance", "token="+DefaultPegasToken, "Content-Type", "application/x-www-form-urlencoded")
	s.postJSON("/crystalpay/v3/balance/list/", `{"auth_login":"sandbox","auth_secret":"`+DefaultCrystalPaySecret+`"}`)
	calls := s.calls("")
	if len(calls) != 6 {
		t.Fatalf("%d calls journaled, want 6", len(calls))
	}
	journal, err := json.Marshal(calls)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{DefaultCrystalPaySecret, DefaultPegasToken, signature} {
		if strings.Contains(string(journal), secret) {
			t.Errorf("the journal shows a secret (%.6s...): %s", secret, journal)
		}
	}
	if calls[0].Query["o"] != "balance" || calls[0].Query["n"] != "sandbox" || calls[1].Query["wallet"] != "w" {
		t.Errorf("the journal lost what is not secret: %s", journal)
	}
}
