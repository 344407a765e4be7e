# End-to-end tests through the kiln binary: name, script, label, timeout (s).
kiln_add_script_test(e2e.fmnist_accuracy e2e/fmnist_accuracy.sh e2e 900)
kiln_add_script_test(e2e.gpt_fortunes e2e/gpt_fortunes.sh e2e 2400)
kiln_add_script_test(fault.resume_exact fault/resume_exact.sh fault 900)
kiln_add_script_test(fault.bad_input fault/bad_input.sh fault 600)
kiln_add_script_test(e2e.install e2e/install.sh e2e 300)
kiln_add_script_test(mpi.dp_equal mpi/dp_equal.sh mpi 900)
kiln_add_script_test(fault.rank_death fault/rank_death.sh fault 600)
kiln_add_script_test(mpi.placement mpi/placement.sh mpi 300)
