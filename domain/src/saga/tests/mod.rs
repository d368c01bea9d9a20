//! Saga tests: given/when/then per rule, then property tests.
