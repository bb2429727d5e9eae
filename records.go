package kassa

import "fmt"

// recordVersion is the version of the JSON records kassa stores and reads
// back (orders, payouts, events, the reconciler's lease), written in each
// as "v". A record without "v" is version 1: every record written before
// the field existed. Bump it when a release changes a record so that an
// older release would misread it, or would drop something that matters
// (money, a receipt's state) by writing back what it read: the older
// release then refuses the record (RecordTooNewError) instead. A field
// that an older release may safely ignore and lose needs no bump.
const recordVersion = 1

// RecordTooNewError is a stored record written by a newer release of kassa
// (its "v" is above recordVersion). Such a record is refused, never read
// in part nor written back, so that this release cannot lose what the
// newer one stored in it. The caller's error names the record's key.
type RecordTooNewError struct {
	// Version is the record's "v".
	Version int
}

func (e *RecordTooNewError) Error() string {
	return fmt.Sprintf("the record is version %d, and this release of kassa reads records up to version %d: "+
		"a newer release wrote it; run that release or a later one", e.Version, recordVersion)
}

// checkRecordVersion refuses a record whose version v is newer than this
// release knows; 0 (no "v") is version 1.
func checkRecordVersion(v int) error {
	if v > recordVersion {
		return &RecordTooNewError{Version: v}
	}
	return nil
}

// storedOrder is an order's record: the Order's fields, and "v".
type storedOrder struct {
	V int `json:"v"`
	*Order
}

// storedPayout is a payout's record: the payoutRecord's fields, and "v".
type storedPayout struct {
	V int `json:"v"`
	*payoutRecord
}

// storedEvent is an event's file: the eventFile's fields, and "v".
type storedEvent struct {
	V int `json:"v"`
	*eventFile
}

// storedLease is the reconciler's lease: the leaseRecord's fields, and
// "v". A newer lease is read by the fields this release knows, not
// refused: it holds nothing a rewrite can lose that matters (its holder
// rewrites it every poll interval), and refusing it would leave an older
// release, after a downgrade, without a reconciler.
type storedLease struct {
	V int `json:"v"`
	*leaseRecord
}
