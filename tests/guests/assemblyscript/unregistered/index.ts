// unregistered: exports the SDK's entry points but never calls useRunnable.
export { allocate, deallocate, run_e } from "@suborbital/suborbital";
