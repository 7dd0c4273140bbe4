// Package bench measures the shipper end to end: the real binary, as a child process, catching up
// a generated JumpCloud backlog from the emulator and posting it to the emulated listener over
// loopback, against the single-goroutine limit of the same work. Run it with `make bench`.
package bench
