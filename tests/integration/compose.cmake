# Deployment checks and the operator's tools (included from tests/CMakeLists.txt):
#  - compose_config_test: docker-compose.yml accepted by docker-compose and meaning what it
#    should (no Docker engine needed);
#  - requeue_script_test: scripts/requeue against this run's broker vhost (skipped, exit 77,
#    outside scripts/test);
#  - requeue_worker_tests: a parked transaction moved back by scripts/requeue is applied once
#    by the real ledger-worker (needs txp_test_support from integration/ledger.cmake).
add_test(NAME compose_config_test
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/../deploy/compose_config_test.sh)
set_tests_properties(compose_config_test PROPERTIES LABELS "deploy" TIMEOUT 120)

add_test(NAME requeue_script_test
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/../deploy/requeue_test.sh)
set_tests_properties(requeue_script_test PROPERTIES LABELS "integration" TIMEOUT 300 SKIP_RETURN_CODE 77)

if(TARGET txp_test_support)
  txp_unit_test(requeue_worker_tests SOURCES ${CMAKE_CURRENT_LIST_DIR}/requeue_test.cpp
    LIBS txp_test_support LABELS integration)
  target_compile_definitions(requeue_worker_tests PRIVATE
    TXP_REQUEUE_SCRIPT="${CMAKE_CURRENT_LIST_DIR}/../../scripts/requeue")
  add_dependencies(requeue_worker_tests ledger-worker)
endif()
