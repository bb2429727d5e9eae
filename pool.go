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
// when none they may take is left, so a pool costs nothing while idle.
//
// A job belongs to a group: the payment account of its order, when it is
// known ("" when not). A group runs at most as many jobs at once as its
// width says (capOf: ⌈rate × 1 s⌉ for a rate-limited account), and the
// rest of its jobs wait in the queue while the other groups' jobs go on:
// an account waiting for the tokens of its rate limit never holds all the
// workers, and so never sets the pace of the other accounts' checks.
type pool struct {
	limit  int
	capOf  func(group string) int
	logger *zap.Logger

	mu      sync.Mutex
	groups  map[string]*group
	queued  map[string]*job // by key, until a worker takes the job
	running map[string]bool // the keys of the jobs workers run
	// after holds, by key, a job for a key a worker runs now (a buyer's
	// nudge), queued once that job ends: two jobs of one order never run
	// at once, or both would send its receipt.
	after   map[string]*job
	workers int
	busy    sync.WaitGroup
}

// group is the queue and the running jobs of one group.
type group struct {
	queue   jobQueue
	running int
	// width is the most jobs of the group that run at once; 0 for no
	// bound but the pool's.
	width int
}

// room reports whether the group may start another job.
func (g *group) room() bool { return g.width == 0 || g.running < g.width }

// job is one piece of work: checking an order, or looking at an order
// that closed unpaid. Its key names what it works on: a job queued for a
// key that has one queued already joins it, and one for a key a worker
// runs now is dropped (the check under way serves), unless it is a
// buyer's nudge, which may bring news the check under way read too early:
// that one runs once the check ends, never beside it.
type job struct {
	key     string
	group   string
	prio    priority
	run     func()
	waiters []*sync.WaitGroup
	index   int
	// requeue: the running job found its group full (enter) and goes back
	// to the queue instead of being done.
	requeue bool
}

// newPool is a pool of limit workers; capOf, if not nil, gives a group's
// width (0 for none).
func newPool(limit int, capOf func(group string) int, logger *zap.Logger) *pool {
	return &pool{limit: max(limit, 1), capOf: capOf, logger: logger,
		groups: make(map[string]*group), queued: make(map[string]*job), running: make(map[string]bool),
		after: make(map[string]*job)}
}

// group returns the group of name, made on first use: the widths of the
// accounts' rate limits are known by the time the reconciler runs.
func (p *pool) group(name string) *group {
	g := p.groups[name]
	if g == nil {
		g = &group{}
		if p.capOf != nil {
			g.width = min(p.capOf(name), p.limit)
		}
		p.groups[name] = g
	}
	return g
}

// submit queues jobs; done, if not nil, is done once each has run. A job
// whose key is queued already raises that one's priority instead.
func (p *pool) submit(done *sync.WaitGroup, jobs ...*job) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, j := range jobs {
		if p.running[j.key] && j.prio.class != classNudge && p.queued[j.key] == nil && p.after[j.key] == nil {
			continue
		}
		if done != nil {
			done.Add(1)
			j.waiters = append(j.waiters, done)
		}
		if p.running[j.key] && p.queued[j.key] == nil {
			p.hold(j)
			continue
		}
		p.queue(j)
	}
	p.spawn()
}

// queue queues j, or, when a job of its key is queued already, gives that
// one j's priority if higher, and j's waiters. Under mu.
func (p *pool) queue(j *job) {
	if q := p.queued[j.key]; q != nil {
		if j.prio.before(q.prio) {
			q.prio = j.prio
			heap.Fix(&p.group(q.group).queue, q.index)
		}
		q.waiters = append(q.waiters, j.waiters...)
		return
	}
	p.queued[j.key] = j
	heap.Push(&p.group(j.group).queue, j)
}

// hold keeps j until the running job of its key ends, merging it into
// a job kept for that key already. Under mu.
func (p *pool) hold(j *job) {
	if d := p.after[j.key]; d != nil {
		if j.prio.before(d.prio) {
			d.prio = j.prio
		}
		d.waiters = append(d.waiters, j.waiters...)
		return
	}
	p.after[j.key] = j
}

// spawn starts workers for the jobs that may start, up to limit: a worker
// busy with a job (one waiting for its account's tokens, say) is not
// counted on to take them. Under mu.
func (p *pool) spawn() {
	startable := 0
	for _, g := range p.groups {
		if g.width == 0 {
			startable += g.queue.Len()
		} else {
			startable += min(g.queue.Len(), max(g.width-g.running, 0))
		}
	}
	for p.workers < p.limit && p.workers-len(p.running) < startable {
		p.workers++
		p.busy.Add(1)
		go p.work()
	}
}

// do runs fn as a job of priority prio under key in group, and waits for
// it.
func (p *pool) do(key, group string, prio priority, fn func()) {
	var done sync.WaitGroup
	p.submit(&done, &job{key: key, group: group, prio: prio, run: fn})
	done.Wait()
}

// enter moves running job j into group, the account its order turned out
// to belong to, before its first call to that account's provider. It
// reports whether j may go on; false when the group runs its most jobs
// already: j is then queued again in the group (it runs once the group has
// room), and must return without doing anything.
func (p *pool) enter(j *job, group string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if j.group == group {
		return true
	}
	p.group(j.group).running--
	j.group = group
	g := p.group(group)
	if !g.room() {
		j.requeue = true
		return false
	}
	g.running++
	return true
}

// pending is how many jobs wait for a worker.
func (p *pool) pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queued) + len(p.after)
}

// wait waits until no worker runs.
func (p *pool) wait() { p.busy.Wait() }

// next takes the job of highest priority among the groups with room, or
// returns nil when there is none. Under mu.
func (p *pool) next() *job {
	var best *group
	for _, g := range p.groups {
		if g.queue.Len() > 0 && g.room() && (best == nil || g.queue[0].prio.before(best.queue[0].prio)) {
			best = g
		}
	}
	if best == nil {
		return nil
	}
	j := heap.Pop(&best.queue).(*job)
	best.running++
	delete(p.queued, j.key)
	p.running[j.key] = true
	return j
}

func (p *pool) work() {
	defer p.busy.Done()
	for {
		p.mu.Lock()
		j := p.next()
		if j == nil {
			p.workers--
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		p.runJob(j)
		p.mu.Lock()
		delete(p.running, j.key)
		requeued := j.requeue
		if requeued {
			j.requeue = false
			p.queue(j)
		} else {
			p.group(j.group).running--
		}
		if d := p.after[j.key]; d != nil {
			delete(p.after, j.key)
			p.queue(d)
			p.spawn()
		}
		p.mu.Unlock()
		if requeued {
			continue
		}
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
