/* image (impl): placeholder */
