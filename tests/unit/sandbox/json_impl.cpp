// Boost.JSON compiled once for the sandbox tests (header-only mode). The
// tests parse the sandbox's output with it: an independent parser checks
// that our hand-written JSON is valid.
#include <boost/json/src.hpp>
