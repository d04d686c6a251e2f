package xsync

// poolSettings are the settings of a pool handle, built from PoolOptions.
type poolSettings struct {
	db        int
	health    HealthPolicy
	healthSet bool
}

func newPoolSettings(c *Client, opts []PoolOption) poolSettings {
	s := poolSettings{db: c.opts.DB}
	for _, o := range opts {
		if o != nil {
			o.applyPool(&s)
		}
	}
	return s
}
