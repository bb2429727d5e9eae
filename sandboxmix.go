package kassa

import "go.uber.org/zap"

// warnMixedSandbox logs an error for each payment account that goes to a
// sandbox while receipts go to a real Smart Cashier (real receipts, sent
// to the tax service, for payments nobody made), or the other way round
// (real payments without real receipts). Providers that do not say where
// they point (EndpointReporter) are not judged.
func (a *App) warnMixedSandbox() {
	receipts, ok := a.receipts.(EndpointReporter)
	if !ok {
		return
	}
	receiptsHost, receiptsSandbox := receipts.APIEndpoint()
	for _, acc := range a.sortedAccounts() {
		if acc.where == nil {
			continue
		}
		host, sandbox := acc.where.APIEndpoint()
		switch {
		case sandbox && !receiptsSandbox:
			a.logger.Error("payments go to a sandbox but receipts to a real receipt service: sandbox payments will get real fiscal receipts",
				zap.String("account", acc.name), zap.String("payment_host", host), zap.String("receipts_host", receiptsHost))
		case !sandbox && receiptsSandbox:
			a.logger.Error("payments are real but receipts go to a sandbox: real payments will get no fiscal receipt",
				zap.String("account", acc.name), zap.String("payment_host", host), zap.String("receipts_host", receiptsHost))
		}
	}
}
