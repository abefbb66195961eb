#!/bin/bash
# b-xen-hr-plain.sh - bench/b-xen-hr.sh over plain TCP (--insecure), the
# link `xl remus` has: what TLS costs an epoch in the nested host.
HR_BENCH_LINK=plain exec bash "$(dirname "$0")/b-xen-hr.sh" "$@"
