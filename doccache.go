package kassa

import "sync"

// The bounds of a receipt handler's kept payment documents: a Pegas-kassa
// receipt file is some tens of kilobytes, so the total holds hundreds.
const (
	// maxCachedDocument is the largest document kept; a larger one is
	// streamed from the provider on every view.
	maxCachedDocument = 1 << 20
	// maxCachedDocuments is the most bytes of documents one handler keeps.
	maxCachedDocuments = 32 << 20
)

// docCache keeps the payment documents a receipt handler fetched. A paid
// payment's document never changes, so a buyer who opens it again, or a
// script that asks a thousand times, costs the shop's provider account one
// call per order and format. It lives in memory: it is bounded, and after a
// restart a document costs one call again.
type docCache struct {
	perDoc, total int

	mu    sync.Mutex
	docs  map[string]cachedDoc
	order []string // keys in the order they were kept, oldest first
	size  int      // bytes kept
}

// cachedDoc is a kept document.
type cachedDoc struct {
	contentType string
	body        []byte
}

// newDocCache is a cache that keeps documents of up to perDoc bytes, and
// total bytes in all.
func newDocCache(perDoc, total int) *docCache {
	return &docCache{perDoc: perDoc, total: total, docs: make(map[string]cachedDoc)}
}

// get returns the document kept under key. A nil cache keeps nothing.
func (c *docCache) get(key string) (cachedDoc, bool) {
	if c == nil {
		return cachedDoc{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.docs[key]
	return d, ok
}

// put keeps a document unless it is over the per-document cap, making room
// by dropping the oldest.
func (c *docCache) put(key, contentType string, body []byte) {
	if c == nil || len(body) > c.perDoc {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.docs[key]; ok {
		return
	}
	for c.size+len(body) > c.total && len(c.order) > 0 {
		c.size -= len(c.docs[c.order[0]].body)
		delete(c.docs, c.order[0])
		c.order = c.order[1:]
	}
	c.docs[key] = cachedDoc{contentType: contentType, body: body}
	c.order = append(c.order, key)
	c.size += len(body)
}
