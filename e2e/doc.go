// Package e2e holds Shepherd's end-to-end tests: a real Temporal dev server, the real `shepherd` binary
// run as worker processes and as a CLI, the real Temporal CLI, and releases on the exec target whose
// commands append to a log file the tests read, or on the local target against a real fleet controller
// whose journal the tests read (fencing_test.go). Nothing here is imported by production code.
//
// Run them with
//
//	SHEPHERD_REQUIRE_E2E=1 go test ./e2e/ -count=1
//
// and re-record the histories the replay tests in workflows/ read with
//
//	go test ./e2e/ -count=1 -record
//
// Without the Temporal CLI binary (`make tools` builds it) the tests skip, or fail when
// SHEPHERD_REQUIRE_E2E=1.
//
// The fault suite (faults_*_test.go, build tag faults; `make test-faults`) runs on the production-shaped
// stack instead: PostgreSQL, the Temporal server binary and two worker processes per test, with the
// server, the database, Prometheus, workers and targets failing:
//
//	SHEPHERD_REQUIRE_E2E=1 go test -tags faults -run '^TestFault' ./e2e/ -count=1
package e2e
