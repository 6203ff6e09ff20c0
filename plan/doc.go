// Package plan reads Nimrod and EnFuzion plan files and nimrodg run files:
// a lexer written as state functions, a parser, a syntax tree that keeps
// every position, and the checks of the plan language.
//
// Both dialects are read by one grammar. A file is classic when it uses a
// classic-only construct (a ';', execute, substitute, rootstart,
// rootfinish, select oneof, fromfile) and modern otherwise; the dialect
// decides the side of a bare copy path and what an unknown $name in shell
// text does. Parse reports every error of a file, each as
// FILE:LINE:COL: message.
//
// The package does no I/O beyond the bytes it is given: files globs and
// fromfile lists are resolved by package sweep.
package plan
