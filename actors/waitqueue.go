package actors

// waitQueue is a FIFO of waiters that may leave in any order: the waiters
// of one lock key, the requests of one pool. The owner marks a waiter that
// leaves (its gone method reports it) and calls left; the queue drops gone
// waiters lazily, so that n waiters leaving cost O(n), not O(n²):
//
//   - trim (and leave, which is left then trim) drops them from the front,
//     and all of them once they are half the slice: the front is then
//     never a gone waiter;
//   - compact drops them all, for an owner that scans the queue.
//
// A gone waiter stays in ws until then: an owner that iterates over ws
// while waiters leave (left does not reslice) sees them and skips them.
type waitQueue[W interface {
	comparable
	gone() bool
}] struct {
	ws   []W
	gone int // gone waiters still in ws
}

func (q *waitQueue[W]) push(w W) { q.ws = append(q.ws, w) }

// head is the first waiter.
func (q *waitQueue[W]) head() W { return q.ws[0] }

// left counts one more waiter gone, without dropping it.
func (q *waitQueue[W]) left() { q.gone++ }

// leave counts one more waiter gone and trims the queue; it reports
// whether the queue is empty now.
func (q *waitQueue[W]) leave() (empty bool) {
	q.gone++
	return q.trim()
}

// trim drops the gone waiters at the front, and all of them once they are
// half the queue; it reports whether the queue is empty now.
func (q *waitQueue[W]) trim() (empty bool) {
	var zero W
	for len(q.ws) > 0 && q.ws[0].gone() {
		q.ws[0] = zero
		q.ws = q.ws[1:]
		q.gone--
	}
	if q.gone*2 > len(q.ws) {
		q.compact()
	}
	return len(q.ws) == 0
}

// compact drops every gone waiter.
func (q *waitQueue[W]) compact() {
	live := make([]W, 0, len(q.ws)-q.gone)
	for _, w := range q.ws {
		if !w.gone() {
			live = append(live, w)
		}
	}
	q.ws, q.gone = live, 0
}
