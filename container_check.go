package xsync

import "fmt"

// Validate reports whether Put can store c: ErrInvalidContainer, with the
// reason, for no ID, a negative TTL or Interval, an Interval over 100
// years, Data over MaxPayload or a CreatedAt before 1970. Put makes the
// same checks; Validate lets a caller sort out bad containers first, as
// `xsync pool import` does.
func (c Container) Validate() error {
	if why := c.problem(); why != "" {
		return fmt.Errorf("%w: container %q: %s", ErrInvalidContainer, c.ID, why)
	}
	return nil
}

// problem is why Put cannot store c, or "".
func (c Container) problem() string {
	switch {
	case c.ID == "":
		return "empty ID"
	case c.TTL < 0:
		return "negative TTL " + c.TTL.String()
	case c.Interval < 0:
		return "negative Interval " + c.Interval.String()
	case c.Interval > maxDelay:
		return "Interval over 100 years"
	case len(c.Data) > MaxPayload:
		return fmt.Sprintf("Data of %d bytes, over %d", len(c.Data), MaxPayload)
	case !c.CreatedAt.IsZero() && c.CreatedAt.UnixMilli() <= 0:
		return "CreatedAt before 1970"
	}
	return ""
}
