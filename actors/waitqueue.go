package actors

// waitQueue is the FIFO of the waiters of one key. A removed waiter is
// dropped at once from the front, and from elsewhere once the removed are
// half the slice: removing n waiters costs O(n), not O(n²). The front is
// never a removed waiter; a queue with no waiter left is deleted.
type waitQueue struct {
	ws   []*lockWaiter
	gone int // removed waiters in ws
}

// head is the first waiter.
func (q *waitQueue) head() *lockWaiter { return q.ws[0] }

// remove takes w (marked removed) out, and reports whether q is empty now.
func (q *waitQueue) remove(w *lockWaiter) (empty bool) {
	q.gone++
	for len(q.ws) > 0 && q.ws[0].removed {
		q.ws[0] = nil
		q.ws = q.ws[1:]
		q.gone--
	}
	if q.gone*2 > len(q.ws) {
		live := make([]*lockWaiter, 0, len(q.ws)-q.gone)
		for _, x := range q.ws {
			if !x.removed {
				live = append(live, x)
			}
		}
		q.ws, q.gone = live, 0
	}
	return len(q.ws) == 0
}
