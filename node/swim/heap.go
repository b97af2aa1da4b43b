package swim

// The timer heap, the queue's heap and the simulation's event queue are
// 4-ary min-heaps over slices of values that order themselves with before.
// These functions serve all three rather than container/heap: no interface
// call per comparison, no allocation to pass a value element through an
// interface, and half the levels of a binary heap, whose children share
// cache lines.

// heapItem is an element that orders itself against another.
type heapItem[T any] interface{ before(*T) bool }

const heapArity = 4

// heapPush adds x to the heap h.
func heapPush[S ~[]T, T heapItem[T]](h *S, x T) {
	*h = append(*h, x)
	q := *h
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / heapArity
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
		first := heapArity*i + 1
		if first >= n {
			return
		}
		m := first
		for c := first + 1; c < min(first+heapArity, n); c++ {
			if q[c].before(&q[m]) {
				m = c
			}
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
	for i := (len(q) - 2) / heapArity; i >= 0; i-- {
		heapDown(q, i)
	}
}
