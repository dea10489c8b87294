// @zsmalloc/workers: the package that starts threads (the swap-storm main job for now).
export {};
