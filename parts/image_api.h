/* image (api): placeholder */
