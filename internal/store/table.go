package store

// table is a map whose entries are also kept in a doubly linked list in the
// order they were last written (put): the front is the least recently
// written entry. It bounds its size by evicting from the front, and drops
// expired entries lazily: when read (get reports them absent), when they
// reach the front during a write (sweep), or when evicted. It is not safe
// for concurrent use; the shard's lock guards it.
type table[V any] struct {
	m    map[string]*node[V]
	root node[V] // sentinel: root.next is the oldest, root.prev the newest
	max  int     // > 0
}

type node[V any] struct {
	key        string
	val        V
	exp        int64 // expiry, Unix nanoseconds; 0 = never
	prev, next *node[V]
}

// sweepBatch is how many expired entries a write removes from the front at
// most, so that no write does unbounded work.
const sweepBatch = 8

func newTable[V any](max int) *table[V] {
	t := &table[V]{m: make(map[string]*node[V]), max: max}
	t.root.next = &t.root
	t.root.prev = &t.root
	return t
}

func (n *node[V]) live(now int64) bool { return n.exp == 0 || now < n.exp }

// get returns the live entry for key, or nil.
func (t *table[V]) get(key string, now int64) *node[V] {
	n := t.m[key]
	if n == nil || !n.live(now) {
		return nil
	}
	return n
}

// put stores val under key (key must not alias caller memory that may
// change: strings are immutable, so any string will do), moves the entry to
// the back, sweeps expired entries off the front and evicts the oldest ones
// beyond the bound. It returns the entry.
func (t *table[V]) put(key string, val V, exp int64, now int64) *node[V] {
	n := t.m[key]
	if n != nil {
		t.unlink(n)
	} else {
		n = &node[V]{}
	}
	n.key, n.val, n.exp = key, val, exp
	// Assigning even when present makes the map keep this key's string
	// (and not an older one's backing memory).
	t.m[key] = n
	t.pushBack(n)
	t.sweep(now)
	for len(t.m) > t.max {
		t.remove(t.root.next)
	}
	return n
}

// sweep removes up to sweepBatch expired entries from the front.
func (t *table[V]) sweep(now int64) {
	for range sweepBatch {
		f := t.root.next
		if f == &t.root || f.live(now) {
			return
		}
		t.remove(f)
	}
}

func (t *table[V]) remove(n *node[V]) {
	t.unlink(n)
	delete(t.m, n.key)
}

func (t *table[V]) unlink(n *node[V]) {
	n.prev.next = n.next
	n.next.prev = n.prev
	n.prev, n.next = nil, nil
}

func (t *table[V]) pushBack(n *node[V]) {
	last := t.root.prev
	n.prev = last
	n.next = &t.root
	last.next = n
	t.root.prev = n
}

// len counts entries, expired ones not yet dropped included.
func (t *table[V]) len() int { return len(t.m) }

// oldest returns the keys from the front (least recently written) on,
// for tests.
func (t *table[V]) keys() []string {
	var ks []string
	for n := t.root.next; n != &t.root; n = n.next {
		ks = append(ks, n.key)
	}
	return ks
}
