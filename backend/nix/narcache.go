package nix

import (
	"bytes"
	"sync"
)

// narCache keeps in memory the archives of paths that several hosts of a
// run share, so that each is read from the local store and serialized
// once rather than once per host: a fleet mostly lacks the same paths.
// Only paths in at least two hosts' closures are kept, each up to
// narCacheEntry bytes and all together up to narCacheTotal; an entry goes
// when the last host whose closure has it is done copying. Anything else
// is streamed from the store as before.
type narCache struct {
	mu   sync.Mutex
	left int64 // bytes it may still take
	// hosts counts, per path, the hosts whose copy may still send it.
	hosts   map[string]int
	entries map[string]*narEntry
}

const (
	narCacheTotal = 256 << 20
	narCacheEntry = 32 << 20
)

type narEntry struct {
	ready chan struct{} // closed once data or err is set
	data  []byte
	err   error
	size  int64 // what it takes of the budget
}

func newNARCache() *narCache {
	return &narCache{left: narCacheTotal, hosts: map[string]int{}, entries: map[string]*narEntry{}}
}

// share records the closures of the hosts that are about to copy.
func (c *narCache) share(closures ...[]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cl := range closures {
		for _, p := range cl {
			c.hosts[p]++
		}
	}
}

// done says that a host whose closure was shared is done copying.
func (c *narCache) done(closure []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range closure {
		if c.hosts[p]--; c.hosts[p] > 0 {
			continue
		}
		delete(c.hosts, p)
		if e, ok := c.entries[p]; ok {
			delete(c.entries, p)
			c.left += e.size
		}
	}
}

// get returns p's archive from memory, serializing it first if it is
// worth keeping; false means: stream it from the store.
func (c *narCache) get(p string, in pathInfo) ([]byte, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	e, ok := c.entries[p]
	if !ok {
		if c.hosts[p] < 2 || in.narSize > narCacheEntry || in.narSize > c.left {
			c.mu.Unlock()
			return nil, false
		}
		e = &narEntry{ready: make(chan struct{}), size: in.narSize}
		c.entries[p] = e
		c.left -= e.size
		c.mu.Unlock()
		e.data, e.err = serialize(p, in)
		close(e.ready)
		if e.err != nil {
			c.forget(p, e)
		}
	} else {
		c.mu.Unlock()
		<-e.ready
	}
	if e.err != nil {
		// Streaming it reports the error where it belongs.
		return nil, false
	}
	return e.data, true
}

func (c *narCache) forget(p string, e *narEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries[p] == e {
		delete(c.entries, p)
		c.left += e.size
	}
}

// serialize archives p into memory and checks the size the store records.
func serialize(p string, in pathInfo) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(int(in.narSize))
	if _, err := archive(&narWriter{w: &buf}, p, in, nil); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
