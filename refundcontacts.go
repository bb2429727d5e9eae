package kassa

import (
	"bytes"
	"net/http"
)

// A refund's return receipt goes to the buyer's e-mail or phone, as the
// sale's did (54-FZ, art. 1.2 p. 5). erase_contacts_after may have erased
// the order's long before a warranty return: the operator then gives the
// contacts the buyer wants it at with the refund (POST
// /kassa/orders/{id}/refund with {"email": ..., "phone": ...}, caddy kassa
// refund ID --email E --phone P). Contacts given replace the order's, both
// (an e-mail alone drops the phone), for this refund and its retries; they
// are erased by the same rule as the order's, counted from the refund's
// done time (contactsVerdictOf), found through the refund index
// (eraseRefundContacts).

// buyerContacts are the e-mail and phone given with a refund.
type buyerContacts struct {
	Email string `json:"email"`
	Phone string `json:"phone"`
}

// decodeRefundBody reads a refund's optional body: nil without one (or
// with no contact in it), else the contacts, checked and cleaned as a
// checkout's (ValidateContacts: 400 bad_email, bad_phone).
func decodeRefundBody(r *http.Request) (*buyerContacts, error) {
	body, err := readBody(r, maxAdminBody)
	if err != nil {
		return nil, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, nil
	}
	var to buyerContacts
	if err := decodeAdminJSON(body, &to); err != nil {
		return nil, err
	}
	if to.Email, to.Phone, err = ValidateContacts(to.Email, to.Phone); err != nil {
		return nil, err
	}
	if to.Email == "" && to.Phone == "" {
		return nil, nil
	}
	return &to, nil
}

// refundContacts sets the contacts a refund's new attempt goes to on
// order o: those given (to), or the order's own; with neither it is 409
// contact_required, and o is left as it was.
func refundContacts(o *Order, to *buyerContacts) error {
	switch {
	case to != nil:
		o.Email, o.Phone = to.Email, to.Phone
		return nil
	case o.Email != "" || o.Phone != "":
		return nil
	}
	why := "the order has no buyer's e-mail or phone"
	if !o.ContactsErasedAt.IsZero() {
		why = "the buyer's contacts were erased (erase_contacts_after)"
	}
	return &RequestError{Status: http.StatusConflict, Code: "contact_required", Field: "email",
		Message: why + ": give the e-mail or phone the buyer wants the refund receipt at (email, phone)"}
}
