// Package config holds the one go-git config type go-micro's runtime names.
package config

// RefSpec is a git refspec such as "refs/*:refs/*".
type RefSpec string
