package main

import (
	"os"

	"go.uber.org/zap"
)

func debugLogger() *zap.Logger {
	if os.Getenv("XDEBUG") == "" {
		return nil
	}
	l, _ := zap.NewDevelopment()
	return l
}
