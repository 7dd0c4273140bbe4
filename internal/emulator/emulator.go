// Package emulator is a local, faithful emulator of the two HTTP services the shipper talks to:
// the JumpCloud Directory Insights API it reads events from (JumpCloud) and the Logz.io listener it
// ships them to. Tests drive the shipper against it over real loopback HTTP, and the demo command
// runs the whole product against it without an account on either service.
//
// The emulator keeps to the published contracts, including the parts that trip clients up:
// JumpCloud pages by search_after and orders events by millisecond and then a tie-break that is
// unrelated to sub-millisecond order; its end_time is inclusive; events can turn up late. Faults
// (throttling, server errors, cut bodies, hangs) are injected by tests through hooks.
//
// Generate and Backlog build realistic Directory Insights events in code, deterministically from
// a seed, so that large backlogs need neither fixtures nor memory.
package emulator
