/* kernels (api): placeholder */
