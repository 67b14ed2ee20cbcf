# End-to-end tests: the CLI and the demo against the running system.
txp_unit_test(e2e_tests SOURCES ${CMAKE_CURRENT_LIST_DIR}/gen_transactions_test.cpp ${CMAKE_CURRENT_LIST_DIR}/gen_transactions_faults_test.cpp
  LIBS txp_gateway_test_support LABELS e2e)
target_compile_definitions(e2e_tests PRIVATE TXP_GEN_TRANSACTIONS_BIN="$<TARGET_FILE:gen_transactions>")
add_dependencies(e2e_tests gen_transactions api-gateway ledger-worker)

# scripts/demo --once end to end: starts everything, processes, summarises, stops cleanly.
add_test(NAME demo_once COMMAND ${CMAKE_CURRENT_LIST_DIR}/demo_once_test.sh ${TXP_SOURCE_DIR})
set_tests_properties(demo_once PROPERTIES LABELS e2e TIMEOUT 900 RUN_SERIAL TRUE)
