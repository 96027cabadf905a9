/* The dmacopy device as the RTL simulator announces it to the bridge: the
 * same description as the C model (../dmacopy_description.h). */
#include "../dmacopy_description.h"
#include "tlpb_rtl.h"

const struct tlpb_rtl_device tlpb_rtl_device = {
    .name = "dmacopy",
    .description = DMACOPY_DESCRIPTION,
};
