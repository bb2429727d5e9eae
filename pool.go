package kassa

import (
	"container/heap"
	"sync"

	"go.uber.org/zap"
)

// pool runs the reconciler's work on orders: at most limit jobs at once,
// the job of highest priority first. Each job makes its provider calls
// one after another, so never more than limit of the reconciler's
// provider calls are in flight. Workers start when work is queued and end
// when none is left, so a pool costs nothing while idle.
type pool struct {
	limit  int
	logger *zap.Logger

	mu      sync.Mutex
	queue   jobQueue
	queued  map[string]*job // by key, until a worker takes the job
	running map[string]bool // the keys of the jobs workers run
	workers int
	busy    sync.WaitGroup
}

// job is one piece of work: checking an order, or looking at an order
// that closed unpaid. Its key names what it works on: a job queued for a
// key that has one queued already joins it, and one for a key a worker
// runs now is dropped (the check under way serves), unless it is a
// buyer's nudge, which may bring news the check under way read too early.
type job struct {
	key     string
	prio    priority
	run     func()
	waiters []*sync.WaitGroup
	index   int
}

func newPool(limit int, logger *zap.Logger) *pool {
	return &pool{limit: max(limit, 1), logger: logger, queued: make(map[string]*job), running: make(map[string]bool)}
}

// submit queues jobs; done, if not nil, is done once each has run. A job
// whose key is queued already raises that one's priority instead.
func (p *pool) submit(done *sync.WaitGroup, jobs ...*job) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, j := range jobs {
		if p.running[j.key] && j.prio.class != classNudge && p.queued[j.key] == nil {
			continue
		}
		if done != nil {
			done.Add(1)
		}
		if q := p.queued[j.key]; q != nil {
			if j.prio.before(q.prio) {
				q.prio = j.prio
				heap.Fix(&p.queue, q.index)
			}
			if done != nil {
				q.waiters = append(q.waiters, done)
			}
			continue
		}
		if done != nil {
			j.waiters = append(j.waiters, done)
		}
		p.queued[j.key] = j
		heap.Push(&p.queue, j)
	}
	for p.workers < p.limit && p.workers < p.queue.Len() {
		p.workers++
		p.busy.Add(1)
		go p.work()
	}
}

// do runs fn as a job of priority prio under key, and waits for it.
func (p *pool) do(key string, prio priority, fn func()) {
	var done sync.WaitGroup
	p.submit(&done, &job{key: key, prio: prio, run: fn})
	done.Wait()
}

// pending is how many jobs wait for a worker.
func (p *pool) pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.queue.Len()
}

// wait waits until no worker runs.
func (p *pool) wait() { p.busy.Wait() }

func (p *pool) work() {
	defer p.busy.Done()
	for {
		p.mu.Lock()
		if p.queue.Len() == 0 {
			p.workers--
			p.mu.Unlock()
			return
		}
		j := heap.Pop(&p.queue).(*job)
		delete(p.queued, j.key)
		p.running[j.key] = true
		p.mu.Unlock()
		p.runJob(j)
		p.mu.Lock()
		delete(p.running, j.key)
		p.mu.Unlock()
		for _, w := range j.waiters {
			w.Done()
		}
	}
}

// runJob runs j. A bug in a job must not take the whole Caddy down: it is
// logged, and the next pass goes on.
func (p *pool) runJob(j *job) {
	defer func() {
		if v := recover(); v != nil {
			p.logger.Error("reconciler: a step panicked", zap.Any("panic", v), zap.Stack("stack"))
		}
	}()
	j.run()
}

// jobQueue is a heap of jobs, highest priority first.
type jobQueue []*job

func (q jobQueue) Len() int           { return len(q) }
func (q jobQueue) Less(i, j int) bool { return q[i].prio.before(q[j].prio) }
func (q jobQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *jobQueue) Push(x any) {
	j := x.(*job)
	j.index = len(*q)
	*q = append(*q, j)
}
func (q *jobQueue) Pop() any {
	old := *q
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return j
}
