package kassa

import (
	"html/template"
	"sync"
)

// qrCacheSize bounds the drawn QR codes a receipt handler keeps: about
// 10 KB each, so at most a few tens of megabytes.
const qrCacheSize = 2048

// qrCache keeps the QR codes of receipt pages once drawn. A done receipt's
// fiscal data never changes, so its code is drawn once (about 2 ms of CPU)
// however often the buyer opens the page. The key is the code's content,
// which names the receipt, so a stale entry cannot exist.
type qrCache struct {
	// draw makes the code of a content; nil is qrSVG.
	draw func(content string) (template.HTML, error)

	mu    sync.Mutex
	codes map[string]template.HTML
	order []string // contents in the order they were drawn, oldest first
}

// get returns content's code, drawing it the first time. When full, the
// oldest code goes. A nil cache draws every time.
func (c *qrCache) get(content string) (template.HTML, error) {
	if c == nil {
		return qrSVG(content)
	}
	c.mu.Lock()
	code, ok := c.codes[content]
	c.mu.Unlock()
	if ok {
		return code, nil
	}
	draw := c.draw
	if draw == nil {
		draw = qrSVG
	}
	code, err := draw(content)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.codes[content]; ok {
		return code, nil
	}
	if c.codes == nil {
		c.codes = make(map[string]template.HTML)
	}
	if len(c.order) >= qrCacheSize {
		delete(c.codes, c.order[0])
		c.order = c.order[1:]
	}
	c.codes[content] = code
	c.order = append(c.order, content)
	return code, nil
}
