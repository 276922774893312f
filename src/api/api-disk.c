/* API handlers for a VM's disks: resize, move, unlink and rescan. */
#include "api.h"

void api_vm_resize(struct api_call *call)
{
    api_fail(call, 501, "resizing disks is not implemented yet");
}

void api_vm_move_disk(struct api_call *call)
{
    api_fail(call, 501, "moving disks is not implemented yet");
}

void api_vm_unlink(struct api_call *call)
{
    api_fail(call, 501, "unlinking disks is not implemented yet");
}

void api_vm_rescan(struct api_call *call)
{
    api_fail(call, 501, "rescanning volumes is not implemented yet");
}
