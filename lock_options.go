package xsync

// lockSettings are the settings of one lock call, built from LockOptions.
type lockSettings struct {
	db    int
	dbSet bool
}
