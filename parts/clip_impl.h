/* clip (impl): placeholder */
