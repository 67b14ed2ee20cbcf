# Ledger integration tests: real PostgreSQL (and the broker and worker processes).
add_library(txp_test_support STATIC ${CMAKE_CURRENT_LIST_DIR}/../support/process.cpp
                                    ${CMAKE_CURRENT_LIST_DIR}/../support/ledger_fixture.cpp
                                    ${CMAKE_CURRENT_LIST_DIR}/../support/message_tap.cpp)
target_include_directories(txp_test_support PUBLIC ${CMAKE_CURRENT_LIST_DIR}/../support)
target_link_libraries(txp_test_support PUBLIC txp::ledger txp::testing)
target_compile_definitions(txp_test_support PRIVATE
  TXP_LEDGER_WORKER_BIN="$<TARGET_FILE:ledger-worker>"
  TXP_TEST_LOG_DIR="${CMAKE_BINARY_DIR}/test-logs")
file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/test-logs)
txp_target_defaults(txp_test_support)

txp_unit_test(db_integration_tests SOURCES ${CMAKE_CURRENT_LIST_DIR}/db_test.cpp
  LIBS txp::db txp::testing LABELS integration)
txp_unit_test(ledger_processor_tests SOURCES ${CMAKE_CURRENT_LIST_DIR}/ledger_processor_test.cpp
  LIBS txp_test_support LABELS integration)
txp_unit_test(ledger_worker_tests SOURCES ${CMAKE_CURRENT_LIST_DIR}/ledger_worker_test.cpp
  LIBS txp_test_support LABELS integration)
add_dependencies(ledger_worker_tests ledger-worker)
