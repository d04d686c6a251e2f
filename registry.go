package xsync

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// registry holds the clients registered by label: the one mutable global of
// the package.
var registry = &labels{byLabel: map[string]*Client{}, reserved: map[string]bool{}}

type labels struct {
	mu       sync.RWMutex
	byLabel  map[string]*Client
	reserved map[string]bool // labels whose Register is connecting
	order    []*Client       // registration order, for Default
}

// Register connects a client as New does and registers it under label, so
// that Resolve(label) finds it. The first client registered is the Default.
// An empty label is ErrInvalidOptions, a label registered already (or being
// registered) ErrDuplicateLabel. Register is safe for concurrent use; it
// holds no lock while it connects.
func Register(label string, opts Options) (*Client, error) {
	if label == "" {
		return nil, fmt.Errorf("%w: empty label", ErrInvalidOptions)
	}
	if err := registry.reserve(label); err != nil {
		return nil, err
	}
	c, err := newClient(label, opts)
	if err != nil {
		registry.release(label)
		return nil, err
	}
	registry.add(c)
	return c, nil
}

// Resolve returns the client registered under label, or ErrUnknownLabel.
func Resolve(label string) (*Client, error) {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	if c, ok := registry.byLabel[label]; ok {
		return c, nil
	}
	return nil, fmt.Errorf("%w: %q", ErrUnknownLabel, label)
}

// Default returns the first client registered that is still open, or nil
// when there is none. It is safe for concurrent use with Register.
func Default() *Client {
	registry.mu.RLock()
	defer registry.mu.RUnlock()
	if len(registry.order) == 0 {
		return nil
	}
	return registry.order[0]
}

// CloseAll closes every registered client (see Client.Close) and empties
// the registry; their labels may be registered again.
func CloseAll(ctx context.Context) error {
	registry.mu.RLock()
	all := append([]*Client(nil), registry.order...)
	registry.mu.RUnlock()
	var errs []error
	for _, c := range all {
		if err := c.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.label, err))
		}
	}
	return errors.Join(errs...)
}

func (r *labels) reserve(label string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.byLabel[label]; ok || r.reserved[label] {
		return fmt.Errorf("%w: %q", ErrDuplicateLabel, label)
	}
	r.reserved[label] = true
	return nil
}

func (r *labels) release(label string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.reserved, label)
}

func (r *labels) add(c *Client) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.reserved, c.label)
	r.byLabel[c.label] = c
	r.order = append(r.order, c)
}

func (r *labels) remove(c *Client) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byLabel[c.label] == c {
		delete(r.byLabel, c.label)
	}
	for i, o := range r.order {
		if o == c {
			r.order = append(r.order[:i:i], r.order[i+1:]...)
			break
		}
	}
}
