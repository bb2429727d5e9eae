package kassa

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
)

// strandedCheckTimeout bounds the look at the open orders when a config
// is provisioned: a slow storage must not hold a reload up.
const strandedCheckTimeout = 30 * time.Second

// checkStranded refuses a config that drops (or renames) a payment account,
// or gives its name to another provider module, while the storage holds
// orders of it whose payment is still open (creating or pending): no one
// would ever finish them. (A change of API within a module, such as
// CrystalPAY v1 to v3, is not seen: an order does not record its API.) It lists the open
// index and reads the orders in it, never kassa/orders, so its cost grows
// with open work, not with history. A paid order whose receipt is under
// way needs no payment account and is no reason to refuse; nor is an
// order closed unpaid (it is no longer watched for a late payment). A
// storage that cannot be read does not refuse the config: the check is
// skipped with a warning, and the reconciler warns of each stranded order.
func (a *App) checkStranded(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, strandedCheckTimeout)
	defer cancel()
	ids, err := a.orders.OpenIDs(ctx)
	if err != nil {
		a.logger.Warn("cannot list the open orders to check that each has its payment account; not checked", zap.Error(err))
		return nil
	}
	stranded := make(map[string]int)
	for _, id := range ids {
		o, err := a.orders.Load(ctx, id)
		switch {
		case errors.Is(err, ErrOrderNotFound):
			continue // an orphan entry, or a Create in flight
		case err != nil:
			a.logger.Warn("cannot read an open order to check that its payment account is configured; not checked",
				zap.String("order_id", id), zap.Error(err))
			if ctx.Err() != nil {
				return nil
			}
			continue
		}
		if !o.State.Open() {
			continue
		}
		if acc, ok := a.accounts[o.Account]; !ok {
			stranded[fmt.Sprintf("payment account %q, which this config no longer has", o.Account)]++
		} else if o.Provider != "" && o.Provider != acc.provider {
			stranded[fmt.Sprintf("payment account %q made through %s, which this config makes a %s account",
				o.Account, o.Provider, acc.provider)]++
		}
	}
	if len(stranded) == 0 {
		return nil
	}
	var parts []string
	for _, what := range slices.Sorted(maps.Keys(stranded)) {
		parts = append(parts, fmt.Sprintf("%d open order(s) of %s", stranded[what], what))
	}
	return fmt.Errorf("the storage holds %s (configured: %s): nothing would finish them. "+
		"Either keep the account as it is in the config until they close "+
		"(paid, expired after order_ttl, or cancelled), or cancel or confirm them first with "+
		"`caddy kassa orders --state pending` and `caddy kassa cancel <id>`, then load this config",
		strings.Join(parts, "; "), a.accountNames())
}
