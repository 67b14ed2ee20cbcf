# api-gateway integration tests: the real gateway and ledger-worker processes against the
# real PostgreSQL and RabbitMQ (included from tests/CMakeLists.txt, after ledger.cmake).
add_library(txp_gateway_test_support STATIC ${CMAKE_CURRENT_LIST_DIR}/../support/gateway_fixture.cpp)
target_include_directories(txp_gateway_test_support PUBLIC ${CMAKE_CURRENT_LIST_DIR}/../support)
target_link_libraries(txp_gateway_test_support PUBLIC txp_test_support txp::http txp::common)
target_compile_definitions(txp_gateway_test_support PUBLIC
  TXP_API_GATEWAY_BIN="$<TARGET_FILE:api-gateway>"
  TXP_TEST_LOG_DIR="${CMAKE_BINARY_DIR}/test-logs")
txp_target_defaults(txp_gateway_test_support)

txp_unit_test(gateway_integration_tests
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/gateway_api_test.cpp ${CMAKE_CURRENT_LIST_DIR}/gateway_outbox_test.cpp
          ${CMAKE_CURRENT_LIST_DIR}/gateway_batch_test.cpp
  LIBS txp_gateway_test_support txp::gateway LABELS integration)
add_dependencies(gateway_integration_tests api-gateway ledger-worker)
