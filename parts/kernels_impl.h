/* kernels (impl): placeholder */
