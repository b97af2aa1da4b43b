package swim

// The timer heap and the queue's heap are binary min-heaps over slices of
// values that order themselves with before. These functions serve both
// rather than container/heap: no interface call per comparison, and no
// allocation to pass a value element through an interface.

// heapItem is an element that orders itself against another.
type heapItem[T any] interface{ before(*T) bool }

// heapPush adds x to the heap h.
func heapPush[S ~[]T, T heapItem[T]](h *S, x T) {
	*h = append(*h, x)
	q := *h
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if !q[i].before(&q[p]) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
}

// heapPop removes the first element of the heap h and returns it.
func heapPop[S ~[]T, T heapItem[T]](h *S) T {
	q := *h
	top, n := q[0], len(q)-1
	q[0] = q[n]
	var zero T
	q[n] = zero
	*h = q[:n]
	heapDown(*h, 0)
	return top
}

// heapDown moves the element at i of the heap q down to its place.
func heapDown[S ~[]T, T heapItem[T]](q S, i int) {
	n := len(q)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && q[r].before(&q[l]) {
			m = r
		}
		if !q[m].before(&q[i]) {
			return
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
}

// heapInit orders q as a heap.
func heapInit[S ~[]T, T heapItem[T]](q S) {
	for i := len(q)/2 - 1; i >= 0; i-- {
		heapDown(q, i)
	}
}
