/* heads (api): placeholder */
