# Plaid integration tests: the emulator as a real process, plaid-sync and ledger-worker as
# real processes, the real broker and database.
add_library(txp_plaid_test_support STATIC ${CMAKE_CURRENT_LIST_DIR}/plaid_support.cpp)
target_include_directories(txp_plaid_test_support PUBLIC ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(txp_plaid_test_support PUBLIC txp_test_support txp::plaid_sync txp::plaid_emulator txp::http txp::testing)
target_compile_definitions(txp_plaid_test_support PRIVATE
  TXP_PLAID_SYNC_BIN="$<TARGET_FILE:plaid-sync>"
  TXP_PLAID_EMULATOR_BIN="$<TARGET_FILE:plaid-emulator>"
  TXP_TEST_LOG_DIR="${CMAKE_BINARY_DIR}/test-logs")
txp_target_defaults(txp_plaid_test_support)

txp_unit_test(plaid_emulator_tests SOURCES ${CMAKE_CURRENT_LIST_DIR}/plaid_emulator_test.cpp
  LIBS txp_plaid_test_support LABELS integration)
txp_unit_test(plaid_sync_tests SOURCES ${CMAKE_CURRENT_LIST_DIR}/plaid_sync_test.cpp
  LIBS txp_plaid_test_support LABELS integration)
add_dependencies(plaid_emulator_tests plaid-emulator)
add_dependencies(plaid_sync_tests plaid-emulator plaid-sync ledger-worker)

# The gateway's /v1/plaid/* routes: a real api-gateway configured for the emulator process,
# with plaid-sync and ledger-worker processes.
txp_unit_test(gateway_plaid_tests SOURCES ${CMAKE_CURRENT_LIST_DIR}/gateway_plaid_test.cpp
  LIBS txp_plaid_test_support txp_gateway_test_support LABELS integration)
add_dependencies(gateway_plaid_tests api-gateway plaid-emulator plaid-sync ledger-worker)
