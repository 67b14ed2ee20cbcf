# Notifier integration tests: the real notifier process, broker and database, and local
# HTTP receivers (included from tests/CMakeLists.txt).
txp_unit_test(notifier_integration_tests
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/../support/process.cpp
    ${CMAKE_CURRENT_LIST_DIR}/notifier_fixture.cpp
    ${CMAKE_CURRENT_LIST_DIR}/notifier_test.cpp
  LIBS txp::notifier txp::ledger txp::http txp::testing Threads::Threads
  LABELS integration)
target_include_directories(notifier_integration_tests PRIVATE ${CMAKE_CURRENT_LIST_DIR}/../support)
target_compile_definitions(notifier_integration_tests PRIVATE
  TXP_NOTIFIER_BIN="$<TARGET_FILE:notifier>"
  TXP_NOTIFIER_TEST_LOG_DIR="${CMAKE_BINARY_DIR}/test-logs")
file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/test-logs)
add_dependencies(notifier_integration_tests notifier)
