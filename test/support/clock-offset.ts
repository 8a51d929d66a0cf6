// Preloaded into a CLI run by tests (NODE_OPTIONS="--import=<this file's URL>"): the process's wall clock
// reads CALICO_FLOWS_TEST_CLOCK_OFFSET_MS later than it is, as if the run started that much later. Event
// times come from the log lines and are not affected; what the wall clock decides is (an alert still pending
// a minute after it was opened is handed out by the next delivery that folds into it).
const offset = Number(process.env.CALICO_FLOWS_TEST_CLOCK_OFFSET_MS ?? "0");
const realNow = Date.now;
Date.now = () => realNow() + offset;
