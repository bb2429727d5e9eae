package main

import (
	"context"
	"sync"
	"sync/atomic"
)

// forEach calls fn for each i from from to to (not included), from workers
// goroutines, each taking the next i in turn; it returns the first error
// (the others stop at their next i), or ctx's.
func forEach(ctx context.Context, from, to, workers int, fn func(i int) error) error {
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= to || ctx.Err() != nil {
					return
				}
				if err := fn(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	return ctx.Err()
}
