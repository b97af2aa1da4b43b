//go:build meshell_proto1

package protocol

// MaxVersion of a build that speaks protocol 1 only, as the release before
// version ranges did: the tests build one (-tags meshell_proto1) to run a
// cluster of two versions from the same code.
const MaxVersion = 1
