# The gateway's notifier routes end to end: the real api-gateway, notifier and ledger-worker
# processes, the broker, the database and a local webhook receiver (included from
# tests/CMakeLists.txt, after gateway.cmake, whose test support library it uses).
txp_unit_test(gateway_notify_tests
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/notifier_fixture.cpp
    ${CMAKE_CURRENT_LIST_DIR}/gateway_notify_test.cpp
  LIBS txp_gateway_test_support txp::notifier txp::http txp::testing Threads::Threads
  LABELS integration)
target_include_directories(gateway_notify_tests PRIVATE ${CMAKE_CURRENT_LIST_DIR})
target_compile_definitions(gateway_notify_tests PRIVATE
  TXP_NOTIFIER_BIN="$<TARGET_FILE:notifier>"
  TXP_NOTIFIER_TEST_LOG_DIR="${CMAKE_BINARY_DIR}/test-logs")
add_dependencies(gateway_notify_tests api-gateway notifier ledger-worker)
