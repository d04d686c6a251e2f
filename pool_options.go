package xsync

// poolSettings are the settings of a pool handle, built from PoolOptions.
type poolSettings struct {
	db    int
	dbSet bool
}
