/* clip (api): placeholder */
