# ledger_bench: drain rate of ledger-worker replicas (a program for scripts/bench, not a ctest test).
add_executable(ledger_bench ${CMAKE_CURRENT_LIST_DIR}/ledger_bench.cpp)
target_link_libraries(ledger_bench PRIVATE txp_test_support)
add_dependencies(ledger_bench ledger-worker)
txp_target_defaults(ledger_bench)
