/* The MPI communicator behind a comm axis, for libraries that take one themselves (parallel
 * HDF5's MPI-IO driver). Everything else goes through kiln/comm.h. */
#ifndef KILN_COMM_MPI_H
#define KILN_COMM_MPI_H
#include <mpi.h>
#include "kiln/comm.h"

MPI_Comm kiln_comm_mpi(const kiln_comm *c, kiln_axis axis);

#endif
